//! Helpers shared by the K-quant reference quantizers (STUB).
