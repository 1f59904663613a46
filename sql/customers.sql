SELECT id AS "_id" FROM customers
