"""The leaf of TMWS 2: what every app builds on, importing none of them.

The base model, domain errors, input field types and contracts, the request and database
contexts, the Redis client, the principal (who is asking), the MCP tool registry and the base
classes of API views. Nothing here names an app's model or rule.
"""
