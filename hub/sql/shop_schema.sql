-- The e-commerce shop's database as it exists (a given: not simplified).
CREATE SCHEMA IF NOT EXISTS shop;

CREATE TABLE IF NOT EXISTS shop.product (
    id         serial PRIMARY KEY,
    handle     text UNIQUE,
    title      text,
    created_at timestamptz,
    updated_at timestamptz
);

CREATE TABLE IF NOT EXISTS shop.variant (
    id         serial PRIMARY KEY,
    product_id int REFERENCES shop.product,
    sku        varchar(32) UNIQUE,
    barcode    varchar(14),
    price      numeric(10,2)
);

CREATE TABLE IF NOT EXISTS shop.location (
    id   serial PRIMARY KEY,
    name text                                  -- the web fulfilment centre(s)
);

CREATE TABLE IF NOT EXISTS shop.inventory_level (
    variant_id  int REFERENCES shop.variant,
    location_id int REFERENCES shop.location,
    available   int NOT NULL,
    committed   int NOT NULL,
    updated_at  timestamptz,
    PRIMARY KEY (variant_id, location_id)
);

CREATE TABLE IF NOT EXISTS shop.customer (
    id                bigserial PRIMARY KEY,
    email             text,
    first_name        text,
    last_name         text,
    phone             text,
    accepts_marketing boolean,
    note              text,
    created_at        timestamptz,
    updated_at        timestamptz
);

CREATE TABLE IF NOT EXISTS shop.orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint REFERENCES shop.customer,
    status      text,                      -- pending, paid, fulfilled, cancelled
    created_at  timestamptz,
    updated_at  timestamptz,
    total       numeric(12,2)
);

CREATE TABLE IF NOT EXISTS shop.order_line (
    order_id   bigint REFERENCES shop.orders,
    line_no    int,
    variant_id int REFERENCES shop.variant,
    quantity   int,
    price      numeric(10,2),
    PRIMARY KEY (order_id, line_no)
);

-- Deleting a customer checks that no order refers to it: without this, a scan of every order.
CREATE INDEX IF NOT EXISTS orders_customer_id ON shop.orders (customer_id);

-- Written by the hub, read by the shop: what can be sold per article and channel group, kept
-- current by the sink connector hub-shop-availability (connectors/sinks/) from
-- hub.writeback.availability. Not captured: it is in no publication (connectors/shop.yaml).
CREATE TABLE IF NOT EXISTS shop.channel_availability (
    gtin            text,
    group_name      text,
    channel         text,
    available       numeric(14,3) NOT NULL,
    unit            text,
    source_position text NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (gtin, group_name)
);
