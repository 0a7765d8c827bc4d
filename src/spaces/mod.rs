//! Distance kernels and Qdrant's score conventions (being written)
