-- The tables the examples in README.md and docs/ read from. The documentation tests create them
-- in a scratch MariaDB database and run every example query against them, so the examples stay
-- correct. Load them into a test database of your own to try the examples:
--   mariadb test_app < docs/example-schema.sql
CREATE TABLE users (
  id BIGINT UNSIGNED PRIMARY KEY,
  email_address VARCHAR(255),
  fname VARCHAR(100),
  lname VARCHAR(100),
  plan ENUM('free', 'starter', 'pro'),
  is_active TINYINT(1) NOT NULL DEFAULT 1,
  preferences JSON,
  anonymous_id CHAR(36),
  created_at DATETIME NOT NULL,
  last_updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

CREATE TABLE orders (
  id BIGINT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  total DECIMAL(10, 2) NOT NULL,
  currency CHAR(3) NOT NULL,
  status VARCHAR(20) NOT NULL,
  created_at DATETIME NOT NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

CREATE TABLE page_views (
  id BIGINT PRIMARY KEY,
  user_id BIGINT UNSIGNED,
  anonymous_id CHAR(36),
  url VARCHAR(500) NOT NULL,
  title VARCHAR(200),
  section VARCHAR(50),
  ip VARCHAR(45),
  viewed_at DATETIME(3) NOT NULL
);

CREATE TABLE app_screens (
  id BIGINT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  screen_name VARCHAR(100) NOT NULL,
  device_type ENUM('ios', 'android') NOT NULL,
  app_version VARCHAR(20),
  viewed_at DATETIME NOT NULL
);

CREATE TABLE companies (
  id BIGINT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  plan VARCHAR(20),
  employees INT,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
);

CREATE TABLE memberships (
  user_id BIGINT UNSIGNED NOT NULL,
  company_id BIGINT NOT NULL,
  role VARCHAR(50) NOT NULL,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (user_id, company_id)
);

CREATE TABLE identity_merges (
  id BIGINT PRIMARY KEY,
  previous_id VARCHAR(64) NOT NULL,
  user_id BIGINT UNSIGNED NOT NULL,
  merged_at DATETIME NOT NULL
);

CREATE TABLE deleted_users (
  user_id BIGINT UNSIGNED PRIMARY KEY,
  deleted_at DATETIME NOT NULL
);

INSERT INTO users VALUES
  (1, 'ada@example.com', 'Ada', 'Lovelace', 'pro', 1, '{"language": "en", "digest": "weekly"}',
   '5f1c6d9e-0000-4000-8000-000000000001', '2026-01-05 09:00:00', NOW()),
  (2, 'grace@example.com', 'Grace', 'Hopper', 'free', 0, NULL,
   '5f1c6d9e-0000-4000-8000-000000000002', '2026-02-11 14:30:00', NOW());
INSERT INTO orders VALUES
  (1001, 1, 49.90, 'EUR', 'completed', '2026-11-02 10:15:00', NOW()),
  (1002, 2, 12.00, 'USD', 'completed', '2026-11-03 18:40:00', NOW());
INSERT INTO page_views VALUES
  (1, 1, '5f1c6d9e-0000-4000-8000-000000000001', 'https://example.com/pricing', 'Pricing', 'marketing',
   '203.0.113.9', NOW(3)),
  (2, NULL, '5f1c6d9e-0000-4000-8000-000000000009', 'https://example.com/', 'Home', 'marketing',
   '198.51.100.4', NOW(3));
INSERT INTO app_screens VALUES (1, 1, 'Checkout', 'ios', '4.2.0', NOW());
INSERT INTO companies VALUES (10, 'Analytical Engines Ltd', 'pro', 12, NOW());
INSERT INTO memberships VALUES (1, 10, 'owner', NOW());
INSERT INTO identity_merges VALUES (1, '5f1c6d9e-0000-4000-8000-000000000001', 1, NOW());
INSERT INTO deleted_users VALUES (2, NOW());
