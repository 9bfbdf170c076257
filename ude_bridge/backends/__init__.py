"""Backends behind `ude_bridge.solve`: torch (native engine), scipy (reference), julia."""
