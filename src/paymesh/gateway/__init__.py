"""The gateway: the public REST API, the only door into paymesh."""
