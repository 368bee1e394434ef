//! eddy-engine
