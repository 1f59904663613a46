-- Default mapping: Stripe subscriptions (/v1/subscriptions) -> XDM record "Stripe Subscriptions"
-- (target schema: sql/subscriptions.xdm.json).
--
-- Each Stripe subscription (listed with status=all, so canceled ones too) becomes one record
-- (the XDM record behavior: no timestamp): `_id` is the subscription id (sub_...), and the
-- subscription's attributes sit in the tenant object `_${tenant}.subscriptions`, in camelCase.
-- `items` is an array with one object per subscription item of the embedded list
-- items['data'] (see the comment at `items` below for how it is built). Stripe's embedded
-- list can be truncated (items.has_more): `itemCount` says how many items there are.
--
-- Source: the table `subscriptions`, one row per Stripe object, with Stripe's snake_case field names
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
        'subscriptions', named_struct(
            'id', id,
            'connectedAccountId', connected_account(),
            'customer', customer,
            'status', status,
            'collectionMethod', collection_method,
            'currency', currency,
            'currencyCode', currency_code(currency),
            'description', description,
            'created', created,
            'startDate', start_date,
            'billingCycleAnchor', billing_cycle_anchor,
            'currentPeriodStart', COALESCE(current_period_start, items['data'][1]['current_period_start']),  -- since API 2025-03-31 the period is on the items
            'currentPeriodEnd', COALESCE(current_period_end, items['data'][1]['current_period_end']),
            'cancelAtPeriodEnd', cancel_at_period_end,
            'cancelAt', cancel_at,
            'canceledAt', canceled_at,
            'endedAt', ended_at,
            'trialStart', trial_start,
            'trialEnd', trial_end,
            'cancellation', CASE WHEN cancellation_details IS NULL THEN NULL ELSE named_struct(
                'reason', cancellation_details['reason'],
                'feedback', cancellation_details['feedback'],
                'comment', cancellation_details['comment']
            ) END,
            'pauseCollection', CASE WHEN pause_collection IS NULL THEN NULL ELSE named_struct(
                'behavior', pause_collection['behavior'],
                'resumesAt', pause_collection['resumes_at']
            ) END,
            'quantity', quantity,
            'daysUntilDue', days_until_due,
            'applicationFeePercent', application_fee_percent,
            'automaticTax', automatic_tax['enabled'],
            'defaultPaymentMethod', default_payment_method,
            'latestInvoice', latest_invoice,
            'schedule', schedule,
            'livemode', livemode,
            'itemCount', CAST(COALESCE(items['total_count'], cardinality(items['data'])) AS BIGINT),  -- total_count when Stripe sends it, else the embedded list's length
            'metadata', metadata,
            -- One object per subscription item: list_project (a stripe-xdm function) takes
            -- each element of items.data and builds a struct from dotted paths, renamed.
            -- To add a field, add a 'name', 'path.in.item' pair.
            'items', list_project(items['data'],
                'id', 'id',
                'priceId', 'price.id',
                'product', 'price.product',
                'quantity', 'quantity',
                'unitAmount', 'price.unit_amount',
                'currency', 'price.currency',
                'interval', 'price.recurring.interval',
                'intervalCount', 'price.recurring.interval_count',
                'usageType', 'price.recurring.usage_type',
                'currentPeriodStart', 'current_period_start',
                'currentPeriodEnd', 'current_period_end',
                'created', 'created',
                'metadata', 'metadata'
            )
        )
    ) AS "_${tenant}"
FROM subscriptions
