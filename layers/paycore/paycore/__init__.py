"""paycore: the shared package every Lambda function imports (shipped as a layer).

Layers, from the inside out:
- ``domain``: plain Python aggregates (order, payment, event) with status enums and transition
  tables. No boto3, no HTTP.
- ``channels``: the channel gateway port (``ChannelGateway``) and one adapter per channel.
- ``dal``: the only code that touches DynamoDB, SQS, Step Functions and Secrets Manager.
- ``services``: the use cases (create order, start payment, settle, deliver webhook) that the
  functions call.
- ``api``: request/response models and problem+json mapping for the HTTP edge.
"""
