"""Interoperability with other liquid-network libraries (``torchlnn.interop.ncps``)."""
