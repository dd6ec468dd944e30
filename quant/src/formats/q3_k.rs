//! STUB: to be replaced by the real format.
use super::Block;
/// Placeholder block.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ3K {
    /// Raw bytes.
    pub raw: [u8; 110],
}
impl Block for BlockQ3K {
    const BLOCK_SIZE: usize = 256;
    fn quantize(_x: &[f32], _out: &mut [Self]) {
        unimplemented!()
    }
    fn dequantize(_blocks: &[Self], _out: &mut [f32]) {
        unimplemented!()
    }
}
