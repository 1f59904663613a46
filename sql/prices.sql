-- Default mapping: Stripe prices (/v1/prices) -> XDM record "Stripe Prices"
-- (target schema: sql/prices.xdm.json).
--
-- Each Stripe price becomes one record (the XDM record behavior: no timestamp): `_id` is the
-- price id (price_...), and the price's attributes sit in the tenant object
-- `_${tenant}.prices`, in camelCase. `recurring` is NULL for one-time prices.
--
-- Source: the table `prices`, one row per Stripe object, with Stripe's snake_case field names
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
    named_struct(
        'prices', named_struct(
            'id', id,
            'connectedAccountId', connected_account(),
            'active', active,
            'currency', currency,
            'currencyCode', currency_code(currency),
            'unitAmountMajor', minor_to_major(unit_amount, currency),
            'unitAmount', unit_amount,
            'unitAmountDecimal', unit_amount_decimal,
            'type', type,
            'billingScheme', billing_scheme,
            'tiersMode', tiers_mode,
            'recurring', CASE WHEN recurring IS NULL THEN NULL ELSE named_struct(
                'interval', recurring['interval'],
                'intervalCount', recurring['interval_count'],
                'usageType', recurring['usage_type'],
                'aggregateUsage', recurring['aggregate_usage'],
                'trialPeriodDays', recurring['trial_period_days']
            ) END,
            'customUnitAmount', CASE WHEN custom_unit_amount IS NULL THEN NULL ELSE named_struct(
                'minimum', custom_unit_amount['minimum'],
                'maximum', custom_unit_amount['maximum'],
                'preset', custom_unit_amount['preset']
            ) END,
            'transformQuantity', CASE WHEN transform_quantity IS NULL THEN NULL ELSE named_struct(
                'divideBy', transform_quantity['divide_by'],
                'round', transform_quantity['round']
            ) END,
            'product', product,
            'nickname', nickname,
            'lookupKey', lookup_key,
            'taxBehavior', tax_behavior,
            'livemode', livemode,
            'created', created,
            'metadata', metadata
        )
    ) AS "_${tenant}"
FROM prices
