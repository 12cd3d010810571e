//! The README's "run it" command plays this story; it must keep ending in the expected
//! state, with the in-memory adapters and with moto.

use local_stack::demo;
use local_stack::stack::{Options, Stack};

fn connections() -> serde_json::Value {
    serde_json::from_str(include_str!("../connections.json")).unwrap()
}

#[tokio::test]
async fn the_demo_story_ends_in_the_expected_state_in_memory() {
    let stack = Stack::start(Options { aws: false, port: 0, bridge: None, connections: connections() }).await.unwrap();
    assert!(demo::run(&stack, &connections()).await.unwrap());
    assert!(stack.dead_letters.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_demo_story_ends_in_the_expected_state_on_moto() {
    let stack = Stack::start(Options { aws: true, port: 0, bridge: None, connections: connections() }).await.unwrap();
    assert!(demo::run(&stack, &connections()).await.unwrap());
}
