"""The operators' side of the gateway, off the request path: the admin API's routes, the
rules for a change of state, the token check, and the API's OpenAPI document."""
