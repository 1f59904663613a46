-- Default mapping: Stripe customers (/v1/customers) -> XDM Individual Profile
-- "Stripe Customers" (target schema: sql/customers.xdm.json).
--
-- Each Stripe customer becomes one profile record: `_id` is the customer id (cus_...), and the
-- customer's attributes sit in the tenant object `_${tenant}.customers`, in camelCase.
-- Identities (descriptors in the schema): `_${tenant}.customers.email` is the PRIMARY identity
-- (namespace Email) and `_${tenant}.customers.id` a secondary one (namespace StripeCustomerId,
-- a custom namespace to create in Platform). Email is NOT required: many Stripe customers have
-- none, and a required email would reject them; such profiles are keyed by the customer id.
--
-- Source: the table `customers`, one row per Stripe object, with Stripe's snake_case field names
-- (see src/decode/schema.rs). Unix timestamps are already TIMESTAMPs, expandable references
-- are id strings, `metadata` is a MAP of strings, nested objects are structs: read them with
-- brackets (`a['b']['c']`), build objects with named_struct('camelCaseName', expr, ...).
-- Amounts stay in the currency's minor unit (cents for usd, whole yen for jpy), as Stripe
-- sends them. NULL values (and objects that are NULL) are left out of the ingested row.
--
-- Customizing: copy this file, edit it, and run with `--mapping <file>` (and `--schema <file>`
-- for a matching XDM schema). `${tenant}` is replaced with the tenant id (`--tenant`, default
-- `tenant`) before the SQL runs, so `"_${tenant}"` becomes `"_acme"`; keep it, or write your
-- tenant id. Every output column
-- (and every named_struct field, recursively) must exist in the XDM schema with the same name,
-- so quote camelCase aliases ("eventType"): unquoted identifiers are folded to lower case.
--
-- Rule: a mapping is ONE projection -- exactly one output row per source row, in order.
-- No WHERE, JOIN, GROUP BY, UNION or LIMIT; use CASE, COALESCE, TRY_CAST and NULL instead.
-- A row whose expression fails at run time is rejected alone (MAPPER-3700-400).
SELECT
    id AS "_id",
    -- Platform's identity map: the e-mail (primary) and the Stripe customer id.
    -- identity_map adds an identity only where its id is present (no e-mail: the id alone).
    identity_map('Email', email, true, 'StripeCustomerId', id, false) AS "identityMap",
    named_struct(
        'customers', named_struct(
            'id', id,
            'connectedAccountId', connected_account(),
            'email', email,
            'name', name,
            'phone', phone,
            'description', description,
            'address', CASE WHEN address IS NULL THEN NULL ELSE named_struct(
                'line1', address['line1'],
                'line2', address['line2'],
                'city', address['city'],
                'state', address['state'],
                'postalCode', address['postal_code'],
                'country', address['country']
            ) END,
            'shipping', CASE WHEN shipping IS NULL THEN NULL ELSE named_struct(
                'name', shipping['name'],
                'phone', shipping['phone'],
                'address', CASE WHEN shipping['address'] IS NULL THEN NULL ELSE named_struct(
                    'line1', shipping['address']['line1'],
                    'line2', shipping['address']['line2'],
                    'city', shipping['address']['city'],
                    'state', shipping['address']['state'],
                    'postalCode', shipping['address']['postal_code'],
                    'country', shipping['address']['country']
                ) END
            ) END,
            'balance', balance,
            'currency', currency,
            'currencyCode', currency_code(currency),
            'balanceMajor', minor_to_major(balance, currency),
            'delinquent', delinquent,
            'preferredLocales', preferred_locales,
            'taxExempt', tax_exempt,
            'invoicePrefix', invoice_prefix,
            'defaultPaymentMethod', invoice_settings['default_payment_method'],
            'defaultSource', default_source,
            'livemode', livemode,
            'created', created,
            'metadata', metadata
        )
    ) AS "_${tenant}"
FROM customers
