//! STUB: to be replaced by the real format.
use super::Block;
/// Placeholder block.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_1 {
    /// Raw bytes.
    pub raw: [u8; 36],
}
impl Block for BlockQ8_1 {
    const BLOCK_SIZE: usize = 32;
    fn quantize(_x: &[f32], _out: &mut [Self]) {
        unimplemented!()
    }
    fn dequantize(_blocks: &[Self], _out: &mut [f32]) {
        unimplemented!()
    }
}
