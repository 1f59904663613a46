SELECT id AS "_id" FROM prices
