"""The API's contract as typed models, one module per resource: what each route takes (query
parameters, JSON bodies) and gives. Validation, serialization and the OpenAPI document
(`services/api/openapi.py`) all come from these."""
