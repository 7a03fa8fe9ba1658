"""The operators' side of the gateway, off the request path: the admin API's routes, the
small context they are given (never the gateway itself), the rules for a change of state and
how one is applied, the token check, and the API's OpenAPI document."""
