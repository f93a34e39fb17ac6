"""The data access layer: the only code that touches DynamoDB, SQS and Step Functions."""
