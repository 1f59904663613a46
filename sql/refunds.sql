SELECT id AS "_id" FROM refunds
