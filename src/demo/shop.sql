-- The demo's shop: fake people with PII that looks real (valid Luhn card
-- numbers, plausible SSNs and IBANs), orders, and free-text support notes.
CREATE TABLE customers (
    id          serial PRIMARY KEY,
    name        text NOT NULL,
    email       text NOT NULL UNIQUE,
    phone       text,
    card_number text,
    ssn         text,
    iban        text,
    city        text,
    created_at  date NOT NULL
);
CREATE TABLE orders (
    id          serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers(id),
    item        text NOT NULL,
    amount      numeric(10,2) NOT NULL,
    ordered_at  date NOT NULL
);
CREATE TABLE support_notes (
    id          serial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers(id),
    note        text NOT NULL
);
INSERT INTO customers (name, email, phone, card_number, ssn, iban, city, created_at) VALUES
 ('Ada Lindqvist',   'ada.lindqvist@example.com',   '+1 415 555 0132', '4539 1488 0343 6467', '536-22-8451', 'DE89370400440532013000', 'Berlin',    '2024-03-11'),
 ('Bruno Okafor',    'bruno.okafor@example.net',    '+44 20 7946 0958', '5425 2334 3010 9903', '412-73-1904', 'GB29NWBK60161331926819', 'London',    '2024-05-02'),
 ('Chiara Rossi',    'chiara.rossi@example.org',    '+39 06 5550 1234', '3714 496353 98431',   '601-48-2290', 'IT60X0542811101000000123456', 'Rome',  '2024-06-19'),
 ('Dmitri Volkov',   'dmitri.volkov@example.com',   '+1 212 555 0187', '6011 1111 1111 1117', '287-65-4321', 'FR1420041010050500013M02606', 'Paris', '2024-08-30'),
 ('Emeka Nwosu',     'emeka.nwosu@example.net',     '+234 1 555 0199', '4111 1111 1111 1111', '523-41-7788', 'NL91ABNA0417164300', 'Lagos',      '2024-09-14'),
 ('Fatima Haddad',   'fatima.haddad@example.org',   '+971 4 555 0123', '5555 5555 5555 4444', '318-90-5562', 'ES9121000418450200051332', 'Dubai',   '2024-11-01'),
 ('Greta Svensson',  'greta.svensson@example.com',  '+46 8 555 012 34', '4012 8888 8888 1881', '455-12-9087', 'SE4550000000058398257466', 'Stockholm', '2025-01-22'),
 ('Hiro Tanaka',     'hiro.tanaka@example.net',     '+81 3 5550 0147', '3566 0020 2036 0505', '634-28-1175', 'CH9300762011623852957', 'Tokyo',     '2025-02-17');
INSERT INTO orders (customer_id, item, amount, ordered_at) VALUES
 (1, 'espresso machine', 349.00, '2025-03-01'), (1, 'coffee beans 1kg', 24.50, '2025-03-15'),
 (2, 'standing desk', 599.00, '2025-03-03'),    (3, 'road bike helmet', 89.90, '2025-04-11'),
 (4, 'noise-cancelling headphones', 279.00, '2025-04-20'), (5, 'e-reader', 129.99, '2025-05-05'),
 (6, 'air purifier', 189.00, '2025-05-09'),    (7, 'hiking boots', 159.00, '2025-06-12'),
 (8, 'mechanical keyboard', 139.00, '2025-06-30'), (2, 'monitor arm', 79.00, '2025-07-02');
INSERT INTO support_notes (customer_id, note) VALUES
 (1, 'Customer asked to update card to 4539 1488 0343 6467; confirmed by email ada.lindqvist@example.com.'),
 (2, 'Refund issued. Customer phone +44 20 7946 0958, SSN on file 412-73-1904 verified for the chargeback.'),
 (4, 'Wants invoices sent to dmitri.volkov@example.com instead of the shipping contact.'),
 (6, 'Bank transfer from IBAN ES9121000418450200051332 arrived twice; second payment refunded.'),
 (8, 'Shipping delayed; customer called from +81 3 5550 0147.');
