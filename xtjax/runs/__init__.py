"""The run schema and start order, shared by train, infer, checkpoint and cli."""
