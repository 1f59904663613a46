-- Default mapping: Stripe refunds (/v1/refunds) -> XDM ExperienceEvent "Stripe Refunds"
-- (target schema: sql/refunds.xdm.json).
--
-- Each Stripe refund becomes one event: `_id` is the refund id (re_...), `timestamp` is when
-- the refund was created, `eventType` is `stripe.refund.<status>`, and the refund's attributes
-- sit in the tenant object `_${tenant}.refunds`, in camelCase. `charge` links the refund to
-- its charge (the `_id` of the charge event). destination_details.card is kept out: it is
-- polymorphic JSON text in the source (reference, reference_status, ...).
--
-- Source: the table `refunds`, one row per Stripe object, with Stripe's snake_case field names
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
    'stripe.refund.' || COALESCE(status, 'unknown') AS "eventType",
    named_struct(
        'refunds', named_struct(
            'id', id,
            'connectedAccountId', connected_account(),
            'amount', amount,
            'currency', currency,
            'currencyCode', currency_code(currency),
            'amountMajor', minor_to_major(amount, currency),
            'status', status,
            'reason', reason,
            'charge', charge,
            'paymentIntent', payment_intent,
            'balanceTransaction', balance_transaction,
            'failureBalanceTransaction', failure_balance_transaction,
            'failureReason', failure_reason,
            'description', description,
            'receiptNumber', receipt_number,
            'destinationType', destination_details['type'],
            'sourceTransferReversal', source_transfer_reversal,
            'transferReversal', transfer_reversal,
            'created', created,
            'metadata', metadata
        )
    ) AS "_${tenant}"
FROM refunds
