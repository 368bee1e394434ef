//! eddy-query
