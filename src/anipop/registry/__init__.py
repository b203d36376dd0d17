"""The champion's promise: registration under a lock, the promotion rule, history and the model card."""
