"""The HTTP API's routers, one per concern; each is built over the shared ``ServerState`` and calls the service
layer (``retrievekit.service``)."""
