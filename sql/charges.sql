-- Default mapping: Stripe charges (/v1/charges) -> XDM ExperienceEvent "Stripe Charges"
-- (target schema: sql/charges.xdm.json).
--
-- Each Stripe charge becomes one event: `_id` is the charge id (ch_...), `timestamp` is when the
-- charge was created, `eventType` is `stripe.charge.<status>` (succeeded, pending or failed), and
-- the charge's attributes sit in the tenant object `_${tenant}.charges`, in camelCase.
-- Amounts stay in the currency's minor unit (cents for usd, whole yen for jpy), as Stripe sends
-- them; beside them, `currencyCode` (upper-case ISO 4217) and `<amount>Major` in major units from
-- the per-currency exponent (minor_to_major: 0 decimals for jpy/krw/…, 3 for bhd/jod/kwd/omr/tnd). Optional sub-objects (card, billing, outcome, ...) are NULL when Stripe did not send
-- them, and NULL fields are simply left out of the ingested row.
--
-- Source: the table `charges`, one row per Stripe charge, with Stripe's snake_case field names
-- (see src/decode/schema.rs). Unix timestamps are already TIMESTAMPs, expandable references
-- (customer, payment_intent, ...) are id strings, `metadata` is a MAP of strings, nested
-- objects are structs: read them with brackets, payment_method_details['card']['brand'].
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
    -- Platform's identity map: the paying customer's Stripe id (primary) and billing e-mail.
    -- identity_map adds an identity only where its id is present (NULL when neither is).
    identity_map(
        'StripeCustomerId', customer, true,
        'Email', billing_details['email'], false
    ) AS "identityMap",
    created AS "timestamp",
    'stripe.charge.' || COALESCE(status, 'unknown') AS "eventType",
    named_struct(
        'charges', named_struct(
            'id', id,
            'connectedAccountId', connected_account(),
            'amount', amount,
            'amountCaptured', amount_captured,
            'amountRefunded', amount_refunded,
            'currency', currency,
            'currencyCode', currency_code(currency),
            'amountMajor', minor_to_major(amount, currency),
            'amountCapturedMajor', minor_to_major(amount_captured, currency),
            'amountRefundedMajor', minor_to_major(amount_refunded, currency),
            'status', status,
            'paid', paid,
            'captured', captured,
            'refunded', refunded,
            'disputed', disputed,
            'customer', customer,
            'paymentIntent', payment_intent,
            'paymentMethod', payment_method,
            'paymentMethodType', payment_method_details['type'],
            'balanceTransaction', balance_transaction,
            'invoice', invoice,
            'description', description,
            'statementDescriptor', calculated_statement_descriptor,
            'receiptEmail', receipt_email,
            'receiptNumber', receipt_number,
            'receiptUrl', receipt_url,
            'failureCode', failure_code,
            'failureMessage', failure_message,
            'applicationFeeAmount', application_fee_amount,
            'transferGroup', transfer_group,
            'livemode', livemode,
            'created', created,
            'card', CASE WHEN payment_method_details['card'] IS NULL THEN NULL ELSE named_struct(
                'brand', payment_method_details['card']['brand'],
                'last4', payment_method_details['card']['last4'],
                'expMonth', payment_method_details['card']['exp_month'],
                'expYear', payment_method_details['card']['exp_year'],
                'funding', payment_method_details['card']['funding'],
                'country', payment_method_details['card']['country'],
                'network', payment_method_details['card']['network'],
                'fingerprint', payment_method_details['card']['fingerprint'],
                'wallet', payment_method_details['card']['wallet']['type'],
                'checks', CASE WHEN payment_method_details['card']['checks'] IS NULL THEN NULL ELSE named_struct(
                    'cvcCheck', payment_method_details['card']['checks']['cvc_check'],
                    'addressLine1Check', payment_method_details['card']['checks']['address_line1_check'],
                    'addressPostalCodeCheck', payment_method_details['card']['checks']['address_postal_code_check']
                ) END
            ) END,
            'billing', CASE WHEN billing_details IS NULL THEN NULL ELSE named_struct(
                'name', billing_details['name'],
                'email', billing_details['email'],
                'phone', billing_details['phone'],
                'address', CASE WHEN billing_details['address'] IS NULL THEN NULL ELSE named_struct(
                    'line1', billing_details['address']['line1'],
                    'line2', billing_details['address']['line2'],
                    'city', billing_details['address']['city'],
                    'state', billing_details['address']['state'],
                    'postalCode', billing_details['address']['postal_code'],
                    'country', billing_details['address']['country']
                ) END
            ) END,
            'outcome', CASE WHEN outcome IS NULL THEN NULL ELSE named_struct(
                'networkStatus', outcome['network_status'],
                'reason', outcome['reason'],
                'riskLevel', outcome['risk_level'],
                'riskScore', outcome['risk_score'],
                'rule', outcome['rule'],
                'sellerMessage', outcome['seller_message'],
                'type', outcome['type']
            ) END,
            'metadata', metadata
        )
    ) AS "_${tenant}"
FROM charges
