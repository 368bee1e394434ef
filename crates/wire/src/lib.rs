//! eddy-wire
