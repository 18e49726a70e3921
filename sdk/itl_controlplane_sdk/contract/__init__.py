"""What the worker, the API server and the operator agree on, importable without a broker client.

``settings`` is the worker process's environment contract (the operator's Deployment builder asks
it for variable names) and ``topology`` names the RabbitMQ objects every side declares or reads.
Both import pydantic only, so the operator and tools use them without pulling in aio-pika.
"""
