"""Prior authorization: from an order that needs it to an approval used in time."""
