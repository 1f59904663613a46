SELECT id AS "_id" FROM balance_transactions
