"""The API's routers: thin, parsing and status codes only; the work is below them."""
