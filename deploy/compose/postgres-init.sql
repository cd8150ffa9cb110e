-- One database per service, each owned by the paymesh role. Runs once, when
-- the PostgreSQL volume is first initialised.
CREATE DATABASE paymesh_accounts OWNER paymesh;
CREATE DATABASE paymesh_payments OWNER paymesh;
CREATE DATABASE paymesh_risk OWNER paymesh;
CREATE DATABASE paymesh_webhooks OWNER paymesh;
CREATE DATABASE paymesh_gateway OWNER paymesh;
