"""VQAv2 and AdVQA tasks (both scored with the VQA accuracy in ``scoring``)."""
