"""Pure analysis over stored records: aggregation, hypothesis verdicts, overfitting,
winners. Nothing here trains or touches files."""
