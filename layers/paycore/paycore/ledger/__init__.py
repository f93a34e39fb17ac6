"""The ledger's pure core: chart of accounts, journal entries, fees, posting rules, balances.

No boto3, no HTTP: the data layer calls one posting rule per money event and writes the entry
it returns in the same transaction as the state change that causes it. See docs/ledger.md.
"""
