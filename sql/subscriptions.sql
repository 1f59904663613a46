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
-- `tenant`) before the SQL runs
-- (so `"_${tenant}"` becomes `"_acme"`); keep it, or write your tenant id. Every output column
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
            'customer', customer,
            'status', status,
            'collectionMethod', collection_method,
            'currency', currency,
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
            -- One object per subscription item. DataFusion's SQL dialect here has no lambdas
            -- (array_transform(list, x -> ...) does not parse), so the array is unrolled:
            -- make_array of one named_struct per element items['data'][1..20], cut to the
            -- list's length with array_slice. 20 is Stripe's maximum of items per subscription.
            -- To add a field, add it to every element (they must all have the same type).
            'items', array_slice(make_array(
                named_struct(
                    'id', items['data'][1]['id'],
                    'priceId', items['data'][1]['price']['id'],
                    'product', items['data'][1]['price']['product'],
                    'quantity', items['data'][1]['quantity'],
                    'unitAmount', items['data'][1]['price']['unit_amount'],
                    'currency', items['data'][1]['price']['currency'],
                    'interval', items['data'][1]['price']['recurring']['interval'],
                    'intervalCount', items['data'][1]['price']['recurring']['interval_count'],
                    'usageType', items['data'][1]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][1]['current_period_start'],
                    'currentPeriodEnd', items['data'][1]['current_period_end'],
                    'created', items['data'][1]['created'],
                    'metadata', items['data'][1]['metadata']
                ),
                named_struct(
                    'id', items['data'][2]['id'],
                    'priceId', items['data'][2]['price']['id'],
                    'product', items['data'][2]['price']['product'],
                    'quantity', items['data'][2]['quantity'],
                    'unitAmount', items['data'][2]['price']['unit_amount'],
                    'currency', items['data'][2]['price']['currency'],
                    'interval', items['data'][2]['price']['recurring']['interval'],
                    'intervalCount', items['data'][2]['price']['recurring']['interval_count'],
                    'usageType', items['data'][2]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][2]['current_period_start'],
                    'currentPeriodEnd', items['data'][2]['current_period_end'],
                    'created', items['data'][2]['created'],
                    'metadata', items['data'][2]['metadata']
                ),
                named_struct(
                    'id', items['data'][3]['id'],
                    'priceId', items['data'][3]['price']['id'],
                    'product', items['data'][3]['price']['product'],
                    'quantity', items['data'][3]['quantity'],
                    'unitAmount', items['data'][3]['price']['unit_amount'],
                    'currency', items['data'][3]['price']['currency'],
                    'interval', items['data'][3]['price']['recurring']['interval'],
                    'intervalCount', items['data'][3]['price']['recurring']['interval_count'],
                    'usageType', items['data'][3]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][3]['current_period_start'],
                    'currentPeriodEnd', items['data'][3]['current_period_end'],
                    'created', items['data'][3]['created'],
                    'metadata', items['data'][3]['metadata']
                ),
                named_struct(
                    'id', items['data'][4]['id'],
                    'priceId', items['data'][4]['price']['id'],
                    'product', items['data'][4]['price']['product'],
                    'quantity', items['data'][4]['quantity'],
                    'unitAmount', items['data'][4]['price']['unit_amount'],
                    'currency', items['data'][4]['price']['currency'],
                    'interval', items['data'][4]['price']['recurring']['interval'],
                    'intervalCount', items['data'][4]['price']['recurring']['interval_count'],
                    'usageType', items['data'][4]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][4]['current_period_start'],
                    'currentPeriodEnd', items['data'][4]['current_period_end'],
                    'created', items['data'][4]['created'],
                    'metadata', items['data'][4]['metadata']
                ),
                named_struct(
                    'id', items['data'][5]['id'],
                    'priceId', items['data'][5]['price']['id'],
                    'product', items['data'][5]['price']['product'],
                    'quantity', items['data'][5]['quantity'],
                    'unitAmount', items['data'][5]['price']['unit_amount'],
                    'currency', items['data'][5]['price']['currency'],
                    'interval', items['data'][5]['price']['recurring']['interval'],
                    'intervalCount', items['data'][5]['price']['recurring']['interval_count'],
                    'usageType', items['data'][5]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][5]['current_period_start'],
                    'currentPeriodEnd', items['data'][5]['current_period_end'],
                    'created', items['data'][5]['created'],
                    'metadata', items['data'][5]['metadata']
                ),
                named_struct(
                    'id', items['data'][6]['id'],
                    'priceId', items['data'][6]['price']['id'],
                    'product', items['data'][6]['price']['product'],
                    'quantity', items['data'][6]['quantity'],
                    'unitAmount', items['data'][6]['price']['unit_amount'],
                    'currency', items['data'][6]['price']['currency'],
                    'interval', items['data'][6]['price']['recurring']['interval'],
                    'intervalCount', items['data'][6]['price']['recurring']['interval_count'],
                    'usageType', items['data'][6]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][6]['current_period_start'],
                    'currentPeriodEnd', items['data'][6]['current_period_end'],
                    'created', items['data'][6]['created'],
                    'metadata', items['data'][6]['metadata']
                ),
                named_struct(
                    'id', items['data'][7]['id'],
                    'priceId', items['data'][7]['price']['id'],
                    'product', items['data'][7]['price']['product'],
                    'quantity', items['data'][7]['quantity'],
                    'unitAmount', items['data'][7]['price']['unit_amount'],
                    'currency', items['data'][7]['price']['currency'],
                    'interval', items['data'][7]['price']['recurring']['interval'],
                    'intervalCount', items['data'][7]['price']['recurring']['interval_count'],
                    'usageType', items['data'][7]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][7]['current_period_start'],
                    'currentPeriodEnd', items['data'][7]['current_period_end'],
                    'created', items['data'][7]['created'],
                    'metadata', items['data'][7]['metadata']
                ),
                named_struct(
                    'id', items['data'][8]['id'],
                    'priceId', items['data'][8]['price']['id'],
                    'product', items['data'][8]['price']['product'],
                    'quantity', items['data'][8]['quantity'],
                    'unitAmount', items['data'][8]['price']['unit_amount'],
                    'currency', items['data'][8]['price']['currency'],
                    'interval', items['data'][8]['price']['recurring']['interval'],
                    'intervalCount', items['data'][8]['price']['recurring']['interval_count'],
                    'usageType', items['data'][8]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][8]['current_period_start'],
                    'currentPeriodEnd', items['data'][8]['current_period_end'],
                    'created', items['data'][8]['created'],
                    'metadata', items['data'][8]['metadata']
                ),
                named_struct(
                    'id', items['data'][9]['id'],
                    'priceId', items['data'][9]['price']['id'],
                    'product', items['data'][9]['price']['product'],
                    'quantity', items['data'][9]['quantity'],
                    'unitAmount', items['data'][9]['price']['unit_amount'],
                    'currency', items['data'][9]['price']['currency'],
                    'interval', items['data'][9]['price']['recurring']['interval'],
                    'intervalCount', items['data'][9]['price']['recurring']['interval_count'],
                    'usageType', items['data'][9]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][9]['current_period_start'],
                    'currentPeriodEnd', items['data'][9]['current_period_end'],
                    'created', items['data'][9]['created'],
                    'metadata', items['data'][9]['metadata']
                ),
                named_struct(
                    'id', items['data'][10]['id'],
                    'priceId', items['data'][10]['price']['id'],
                    'product', items['data'][10]['price']['product'],
                    'quantity', items['data'][10]['quantity'],
                    'unitAmount', items['data'][10]['price']['unit_amount'],
                    'currency', items['data'][10]['price']['currency'],
                    'interval', items['data'][10]['price']['recurring']['interval'],
                    'intervalCount', items['data'][10]['price']['recurring']['interval_count'],
                    'usageType', items['data'][10]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][10]['current_period_start'],
                    'currentPeriodEnd', items['data'][10]['current_period_end'],
                    'created', items['data'][10]['created'],
                    'metadata', items['data'][10]['metadata']
                ),
                named_struct(
                    'id', items['data'][11]['id'],
                    'priceId', items['data'][11]['price']['id'],
                    'product', items['data'][11]['price']['product'],
                    'quantity', items['data'][11]['quantity'],
                    'unitAmount', items['data'][11]['price']['unit_amount'],
                    'currency', items['data'][11]['price']['currency'],
                    'interval', items['data'][11]['price']['recurring']['interval'],
                    'intervalCount', items['data'][11]['price']['recurring']['interval_count'],
                    'usageType', items['data'][11]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][11]['current_period_start'],
                    'currentPeriodEnd', items['data'][11]['current_period_end'],
                    'created', items['data'][11]['created'],
                    'metadata', items['data'][11]['metadata']
                ),
                named_struct(
                    'id', items['data'][12]['id'],
                    'priceId', items['data'][12]['price']['id'],
                    'product', items['data'][12]['price']['product'],
                    'quantity', items['data'][12]['quantity'],
                    'unitAmount', items['data'][12]['price']['unit_amount'],
                    'currency', items['data'][12]['price']['currency'],
                    'interval', items['data'][12]['price']['recurring']['interval'],
                    'intervalCount', items['data'][12]['price']['recurring']['interval_count'],
                    'usageType', items['data'][12]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][12]['current_period_start'],
                    'currentPeriodEnd', items['data'][12]['current_period_end'],
                    'created', items['data'][12]['created'],
                    'metadata', items['data'][12]['metadata']
                ),
                named_struct(
                    'id', items['data'][13]['id'],
                    'priceId', items['data'][13]['price']['id'],
                    'product', items['data'][13]['price']['product'],
                    'quantity', items['data'][13]['quantity'],
                    'unitAmount', items['data'][13]['price']['unit_amount'],
                    'currency', items['data'][13]['price']['currency'],
                    'interval', items['data'][13]['price']['recurring']['interval'],
                    'intervalCount', items['data'][13]['price']['recurring']['interval_count'],
                    'usageType', items['data'][13]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][13]['current_period_start'],
                    'currentPeriodEnd', items['data'][13]['current_period_end'],
                    'created', items['data'][13]['created'],
                    'metadata', items['data'][13]['metadata']
                ),
                named_struct(
                    'id', items['data'][14]['id'],
                    'priceId', items['data'][14]['price']['id'],
                    'product', items['data'][14]['price']['product'],
                    'quantity', items['data'][14]['quantity'],
                    'unitAmount', items['data'][14]['price']['unit_amount'],
                    'currency', items['data'][14]['price']['currency'],
                    'interval', items['data'][14]['price']['recurring']['interval'],
                    'intervalCount', items['data'][14]['price']['recurring']['interval_count'],
                    'usageType', items['data'][14]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][14]['current_period_start'],
                    'currentPeriodEnd', items['data'][14]['current_period_end'],
                    'created', items['data'][14]['created'],
                    'metadata', items['data'][14]['metadata']
                ),
                named_struct(
                    'id', items['data'][15]['id'],
                    'priceId', items['data'][15]['price']['id'],
                    'product', items['data'][15]['price']['product'],
                    'quantity', items['data'][15]['quantity'],
                    'unitAmount', items['data'][15]['price']['unit_amount'],
                    'currency', items['data'][15]['price']['currency'],
                    'interval', items['data'][15]['price']['recurring']['interval'],
                    'intervalCount', items['data'][15]['price']['recurring']['interval_count'],
                    'usageType', items['data'][15]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][15]['current_period_start'],
                    'currentPeriodEnd', items['data'][15]['current_period_end'],
                    'created', items['data'][15]['created'],
                    'metadata', items['data'][15]['metadata']
                ),
                named_struct(
                    'id', items['data'][16]['id'],
                    'priceId', items['data'][16]['price']['id'],
                    'product', items['data'][16]['price']['product'],
                    'quantity', items['data'][16]['quantity'],
                    'unitAmount', items['data'][16]['price']['unit_amount'],
                    'currency', items['data'][16]['price']['currency'],
                    'interval', items['data'][16]['price']['recurring']['interval'],
                    'intervalCount', items['data'][16]['price']['recurring']['interval_count'],
                    'usageType', items['data'][16]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][16]['current_period_start'],
                    'currentPeriodEnd', items['data'][16]['current_period_end'],
                    'created', items['data'][16]['created'],
                    'metadata', items['data'][16]['metadata']
                ),
                named_struct(
                    'id', items['data'][17]['id'],
                    'priceId', items['data'][17]['price']['id'],
                    'product', items['data'][17]['price']['product'],
                    'quantity', items['data'][17]['quantity'],
                    'unitAmount', items['data'][17]['price']['unit_amount'],
                    'currency', items['data'][17]['price']['currency'],
                    'interval', items['data'][17]['price']['recurring']['interval'],
                    'intervalCount', items['data'][17]['price']['recurring']['interval_count'],
                    'usageType', items['data'][17]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][17]['current_period_start'],
                    'currentPeriodEnd', items['data'][17]['current_period_end'],
                    'created', items['data'][17]['created'],
                    'metadata', items['data'][17]['metadata']
                ),
                named_struct(
                    'id', items['data'][18]['id'],
                    'priceId', items['data'][18]['price']['id'],
                    'product', items['data'][18]['price']['product'],
                    'quantity', items['data'][18]['quantity'],
                    'unitAmount', items['data'][18]['price']['unit_amount'],
                    'currency', items['data'][18]['price']['currency'],
                    'interval', items['data'][18]['price']['recurring']['interval'],
                    'intervalCount', items['data'][18]['price']['recurring']['interval_count'],
                    'usageType', items['data'][18]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][18]['current_period_start'],
                    'currentPeriodEnd', items['data'][18]['current_period_end'],
                    'created', items['data'][18]['created'],
                    'metadata', items['data'][18]['metadata']
                ),
                named_struct(
                    'id', items['data'][19]['id'],
                    'priceId', items['data'][19]['price']['id'],
                    'product', items['data'][19]['price']['product'],
                    'quantity', items['data'][19]['quantity'],
                    'unitAmount', items['data'][19]['price']['unit_amount'],
                    'currency', items['data'][19]['price']['currency'],
                    'interval', items['data'][19]['price']['recurring']['interval'],
                    'intervalCount', items['data'][19]['price']['recurring']['interval_count'],
                    'usageType', items['data'][19]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][19]['current_period_start'],
                    'currentPeriodEnd', items['data'][19]['current_period_end'],
                    'created', items['data'][19]['created'],
                    'metadata', items['data'][19]['metadata']
                ),
                named_struct(
                    'id', items['data'][20]['id'],
                    'priceId', items['data'][20]['price']['id'],
                    'product', items['data'][20]['price']['product'],
                    'quantity', items['data'][20]['quantity'],
                    'unitAmount', items['data'][20]['price']['unit_amount'],
                    'currency', items['data'][20]['price']['currency'],
                    'interval', items['data'][20]['price']['recurring']['interval'],
                    'intervalCount', items['data'][20]['price']['recurring']['interval_count'],
                    'usageType', items['data'][20]['price']['recurring']['usage_type'],
                    'currentPeriodStart', items['data'][20]['current_period_start'],
                    'currentPeriodEnd', items['data'][20]['current_period_end'],
                    'created', items['data'][20]['created'],
                    'metadata', items['data'][20]['metadata']
                )
            ), 1, CAST(cardinality(items['data']) AS BIGINT))
        )
    ) AS "_${tenant}"
FROM subscriptions
