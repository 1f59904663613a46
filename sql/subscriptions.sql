SELECT id AS "_id" FROM subscriptions
