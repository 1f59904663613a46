-- Default mapping: Stripe balance transactions (/v1/balance_transactions) -> XDM ExperienceEvent
-- "Stripe Balance Transactions" (target schema: sql/balance_transactions.xdm.json).
--
-- Each balance transaction (every movement of funds in the Stripe balance) becomes one event:
-- `_id` is the transaction id (txn_...), `timestamp` is when it was created, `eventType` is
-- `stripe.balance_transaction.<type>` (charge, refund, payout, ...), and the attributes sit in
-- the tenant object `_${tenant}.balanceTransactions`, in camelCase; `feeDetails` is an array
-- with one object per fee.
--
-- Source: the table `balance_transactions`, one row per Stripe object, with Stripe's snake_case field names
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
    created AS "timestamp",
    'stripe.balance_transaction.' || COALESCE(type, 'unknown') AS "eventType",
    named_struct(
        'balanceTransactions', named_struct(
            'id', id,
            'connectedAccountId', connected_account(),
            'amount', amount,
            'fee', fee,
            'net', net,
            'currency', currency,
            'currencyCode', currency_code(currency),
            'amountMajor', minor_to_major(amount, currency),
            'feeMajor', minor_to_major(fee, currency),
            'netMajor', minor_to_major(net, currency),
            'exchangeRate', exchange_rate,
            'type', type,
            'reportingCategory', reporting_category,
            'status', status,
            'availableOn', available_on,
            'balanceType', balance_type,
            'source', source,
            'description', description,
            'created', created,
            -- fee_details is a list of structs whose fields (amount, application, currency,
            -- description, type) already have the XDM names, so it is copied as is.
            'feeDetails', fee_details
        )
    ) AS "_${tenant}"
FROM balance_transactions
