"""From raw rows to validated tables: parsing, cleaning, franchise grouping, validation and the data card."""
