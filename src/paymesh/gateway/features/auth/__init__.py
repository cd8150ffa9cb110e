"""Authentication and tenant administration: tokens, signing keys, tenants, clients."""
