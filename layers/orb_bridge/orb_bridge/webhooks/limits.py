"""Bounds on a webhook's envelope, shared by the plain reader and its pydantic model."""

# EventBridge limits DetailType to 128 characters; a longer type could never be handed on.
MAX_TYPE_LENGTH = 128
MAX_ID_LENGTH = 256
