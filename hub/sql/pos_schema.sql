-- The stores' point-of-sale database as it exists (a given: not simplified).
CREATE SCHEMA IF NOT EXISTS pos;

CREATE TABLE IF NOT EXISTS pos.store (
    store_code varchar(8) PRIMARY KEY,
    name       text NOT NULL,
    city       text,
    opened_on  date
);

CREATE TABLE IF NOT EXISTS pos.stock (
    store_code    varchar(8) REFERENCES pos.store,
    ean           char(13),
    qty           integer NOT NULL,
    last_count_at timestamp without time zone,
    PRIMARY KEY (store_code, ean)
);

CREATE TABLE IF NOT EXISTS pos.ticket (
    ticket_id    bigserial PRIMARY KEY,
    store_code   varchar(8) REFERENCES pos.store,
    till_no      smallint,
    loyalty_card varchar(20),
    opened_at    timestamptz,
    closed_at    timestamptz,
    total        numeric(12,2),
    status       char(1)            -- O open, C closed, V voided
);

CREATE TABLE IF NOT EXISTS pos.ticket_line (
    ticket_id  bigint REFERENCES pos.ticket,
    line_no    smallint,
    ean        char(13),
    qty        integer,
    unit_price numeric(10,2),
    PRIMARY KEY (ticket_id, line_no)
);

CREATE TABLE IF NOT EXISTS pos.loyalty_member (
    card_no         varchar(20) PRIMARY KEY,
    full_name       text,
    email           text,
    phone           text,
    postcode        varchar(10),
    enrolled_at     timestamptz,
    optin_marketing boolean
);
