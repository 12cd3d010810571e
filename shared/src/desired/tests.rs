//! Table tests of the desired state as of now.
