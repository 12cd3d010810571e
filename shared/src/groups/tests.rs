//! Managed groups against the in-memory twin under each bridge behaviour nobody has verified:
//! which group a name means, who creates what, and how memberships are learnt.

use super::*;
use crate::scim::{
    CreateOutcome, DirectoryOp, DuplicateGroups, InMemoryDirectory, NewUser, PatchOperation, ScimMeta, TwinBehaviour,
};

fn managed() -> BTreeSet<String> {
    ["Employees", "Engineering", "Finance"].into_iter().map(str::to_owned).collect()
}

fn groups() -> ManagedGroups {
    ManagedGroups::new(managed(), Duration::from_secs(300))
}

fn group(id: &str, name: &str, created: Option<&str>) -> ScimGroup {
    ScimGroup {
        id: ScimGroupId::new(id),
        display_name: name.to_owned(),
        members: None,
        meta: created.map(|at| ScimMeta { created: Some(at.to_owned()) }),
    }
}

async fn user(directory: &InMemoryDirectory, email: &str) -> ScimUser {
    match directory.create_user(&NewUser::new(email, email, "A", "B", "A B")).await.unwrap() {
        CreateOutcome::Created(user) => user,
        CreateOutcome::Conflict => panic!("{email} exists"),
    }
}

async fn add(directory: &InMemoryDirectory, group: &ScimGroupId, user: &ScimUser) {
    directory.patch_group(group, vec![PatchOperation::add_members(std::slice::from_ref(&user.id))]).await.unwrap();
}

fn count(directory: &InMemoryDirectory, op: DirectoryOp) -> usize {
    directory.calls().iter().filter(|c| c.op == op).count()
}

/// Whatever order the bridge lists them in, every process picks the same group per name.
#[test]
fn the_same_group_is_chosen_whatever_the_listing_order() {
    let early = "2026-05-21T14:15:21Z";
    let late = "2026-05-21T14:18:50Z";
    let cases: [(&str, Vec<ScimGroup>, &str, Vec<&str>); 5] = [
        ("one group", vec![group("b", "Engineering", Some(late))], "b", vec![]),
        (
            "oldest wins",
            vec![group("a", "Engineering", Some(late)), group("b", "engineering", Some(early))],
            "b",
            vec!["a"],
        ),
        (
            "same time: smallest id",
            vec![group("b", "Engineering", Some(early)), group("a", "ENGINEERING", Some(early))],
            "a",
            vec!["b"],
        ),
        (
            "dated before undated",
            vec![group("a", "Engineering", None), group("b", "Engineering", Some(late))],
            "b",
            vec!["a"],
        ),
        (
            "undated: smallest id",
            vec![group("c", "Engineering", None), group("b", "Engineering", Some("not a time"))],
            "b",
            vec!["c"],
        ),
    ];
    for (name, listed, kept, others) in cases {
        for reversed in [false, true] {
            let mut listing = listed.clone();
            if reversed {
                listing.reverse();
            }
            listing.push(group("z", "Hand Picked", None));
            let catalogue = Catalogue::resolve(listing, &managed());
            assert_eq!(catalogue.group(" engineering ").map(|g| g.id.as_str()), Some(kept), "{name}");
            let duplicates: Vec<&str> =
                catalogue.duplicates.iter().flat_map(|d| d.others.iter()).map(|id| id.as_str()).collect();
            assert_eq!(duplicates, others, "{name}");
            assert!(catalogue.group("Hand Picked").is_none(), "{name}: unmanaged groups are not chosen");
            assert!(catalogue.has("hand picked"), "{name}: but they exist");
            assert!(!catalogue.has("Finance"), "{name}");
        }
    }
}

/// A duplicate's membership never counts as the managed group's: the person must be added
/// to the group every process uses.
#[test]
fn membership_of_an_unchosen_duplicate_does_not_count() {
    let listing = vec![
        group("old", "Engineering", Some("2026-01-01T00:00:00Z")),
        group("new", "Engineering", Some("2026-02-01T00:00:00Z")),
        group("x", "Hand Picked", None),
    ];
    let catalogue = Catalogue::resolve(listing, &managed());
    let refs = [
        ("new", Some("Engineering")),
        ("x", Some("Hand Picked")),
        ("later", Some("Made Since")),
        ("dup", Some("Finance")),
    ];
    let names = catalogue.names_of(refs.into_iter());
    assert_eq!(names, ["Hand Picked", "Made Since"].into_iter().map(str::to_owned).collect());
    let names = catalogue.names_of([("old", None)].into_iter());
    assert_eq!(names, ["Engineering".to_owned()].into_iter().collect());
}

/// Reading the catalogue never writes; ensuring creates every missing managed group once,
/// even when invocations of one process ask at the same moment.
#[tokio::test]
async fn reading_creates_nothing_and_concurrent_ensures_create_each_group_once() {
    let directory = InMemoryDirectory::new();
    let groups = groups();
    let catalogue = groups.catalogue(&directory).await.unwrap();
    assert!(catalogue.group("Employees").is_none());
    assert_eq!(count(&directory, DirectoryOp::CreateGroup), 0);

    let (a, b, c) = tokio::join!(
        groups.ensure(&directory, "Employees"),
        groups.ensure(&directory, "Engineering"),
        groups.ensure(&directory, "Finance"),
    );
    let ids = |c: &Catalogue| ["Employees", "Engineering", "Finance"].map(|n| c.group(n).unwrap().id.clone());
    assert_eq!(ids(&a.unwrap()), ids(&b.unwrap()));
    assert_eq!(ids(&c.unwrap()), ids(&groups.catalogue(&directory).await.unwrap()));
    let created: Vec<String> =
        directory.calls().into_iter().filter(|c| c.op == DirectoryOp::CreateGroup).map(|c| c.target).collect();
    assert_eq!(created, vec!["Employees", "Engineering", "Finance"]);
    assert_eq!(directory.groups().len(), 3);
}

/// Two processes (two Lambda instances) ensure at the same moment on each kind of bridge.
/// Whatever the bridge does with the second create, both use the same group, and where the
/// bridge allowed a second one, the process that made it deletes it again. A duplicate that
/// was there before (made by hand) is never deleted: it is reported.
#[tokio::test]
async fn two_processes_racing_to_create_use_the_same_group_on_every_bridge() {
    for mode in [DuplicateGroups::Conflict, DuplicateGroups::Allow, DuplicateGroups::ReturnExisting] {
        let directory =
            InMemoryDirectory::with_behaviour(TwinBehaviour { duplicate_groups: mode, ..TwinBehaviour::default() });
        let (first, second) = (groups(), groups());
        // Both read the empty catalogue before either creates.
        first.catalogue(&directory).await.unwrap();
        second.catalogue(&directory).await.unwrap();
        let a = first.ensure(&directory, "Engineering").await.unwrap();
        let b = second.ensure(&directory, "Engineering").await.unwrap();
        for name in ["Employees", "Engineering", "Finance"] {
            assert_eq!(a.group(name).map(|g| &g.id), b.group(name).map(|g| &g.id), "{mode:?}: {name}");
        }
        let engineering = directory.groups().into_iter().filter(|g| g.display_name == "Engineering").count();
        assert_eq!(engineering, 1, "{mode:?}");
        assert!(b.duplicates.is_empty(), "{mode:?}: {:?}", b.duplicates);
        let deleted = count(&directory, DirectoryOp::DeleteGroup);
        assert_eq!(deleted, if mode == DuplicateGroups::Allow { 3 } else { 0 }, "{mode:?}");
    }

    // Sharing a ledger (as Lambda instances do), the second waits for the first's lease and
    // then finds the groups made: nothing is created twice, nothing deleted.
    let directory = InMemoryDirectory::with_behaviour(TwinBehaviour {
        duplicate_groups: DuplicateGroups::Allow,
        ..TwinBehaviour::default()
    });
    let ledger: Arc<dyn Ledger> = Arc::new(crate::ledger::InMemoryLedger::new());
    let (first, second) = (groups().coordinated_by(ledger.clone()), groups().coordinated_by(ledger));
    first.catalogue(&directory).await.unwrap();
    second.catalogue(&directory).await.unwrap();
    let (a, b) = tokio::join!(first.ensure(&directory, "Engineering"), second.ensure(&directory, "Finance"));
    assert_eq!(a.unwrap().group("Finance").map(|g| &g.id), b.unwrap().group("Finance").map(|g| &g.id));
    assert_eq!((count(&directory, DirectoryOp::CreateGroup), count(&directory, DirectoryOp::DeleteGroup)), (3, 0));

    let directory = InMemoryDirectory::new();
    let by_hand = directory.insert_group("Engineering", &[]);
    let older = directory.insert_group("engineering", &[]);
    let groups = groups();
    let catalogue = groups.ensure(&directory, "Employees").await.unwrap();
    assert_eq!(catalogue.group("Engineering").map(|g| &g.id), Some(&by_hand.id), "the oldest");
    let reported: Vec<&ScimGroupId> = catalogue.duplicates.iter().flat_map(|d| d.others.iter()).collect();
    assert_eq!(reported, vec![&older.id]);
    assert_eq!(count(&directory, DirectoryOp::DeleteGroup), 0, "never deleted");
}

/// The strategy each bridge gets, what it costs per person, and that it is right: Ada is in
/// Employees and Engineering, and in a hand-made group.
#[tokio::test]
async fn each_bridge_gets_the_cheapest_strategy_that_works() {
    let shows_nothing = TwinBehaviour::no_memberships();
    let cases = [
        ("users carry groups", TwinBehaviour::default(), MembershipStrategy::UserGroups, 0),
        (
            "member filter only",
            TwinBehaviour { member_filter: true, ..shows_nothing },
            MembershipStrategy::MemberFilter,
            1,
        ),
        (
            "members on read by id",
            TwinBehaviour { members_on_get: true, ..shows_nothing },
            MembershipStrategy::ManagedGroupReads,
            3,
        ),
        // Nowhere: the managed groups are read with each person, in case they start to show.
        ("nowhere", shows_nothing, MembershipStrategy::Unknown, 3),
    ];
    for (name, behaviour, strategy, reads_per_person) in cases {
        let directory = InMemoryDirectory::with_behaviour(behaviour);
        let ada = user(&directory, "ada@example.com").await;
        let groups = groups();
        let catalogue = groups.ensure(&directory, "Employees").await.unwrap();
        for managed in ["Employees", "Engineering"] {
            add(&directory, &catalogue.group(managed).unwrap().id, &ada).await;
        }
        add(&directory, &directory.insert_group("Hand Picked", &[]).id, &ada).await;
        let groups = ManagedGroups::new(managed(), Duration::from_secs(300)); // a cold start
        let catalogue = groups.catalogue(&directory).await.unwrap();
        assert_eq!(groups.strategy(), Some(strategy), "{name}");

        let ada = directory.get_user(&ada.id).await.unwrap().unwrap();
        directory.clear_calls();
        let membership = groups.membership(&directory, &catalogue, &ada).await.unwrap();
        assert_eq!(directory.calls().len(), reads_per_person, "{name}: requests per person");
        let expected = match strategy {
            MembershipStrategy::Unknown => Membership::Unknown,
            // Reads of managed groups see only those.
            MembershipStrategy::ManagedGroupReads => {
                Membership::Known(["Employees", "Engineering"].map(String::from).into())
            }
            _ => Membership::Known(["Employees", "Engineering", "Hand Picked"].map(String::from).into()),
        };
        assert_eq!(membership, expected, "{name}");
    }
}

/// On a fresh account nobody shows groups yet; the first user resource that carries them
/// switches to the free strategy. A bridge that ignores the member filter is not trusted.
#[tokio::test]
async fn the_strategy_improves_on_evidence_and_an_ignored_filter_is_not_trusted() {
    let directory = InMemoryDirectory::new();
    let groups = groups();
    let catalogue = groups.ensure(&directory, "Employees").await.unwrap();
    assert_eq!(groups.strategy(), Some(MembershipStrategy::MemberFilter), "nobody is in a group yet");
    let ada = user(&directory, "ada@example.com").await;
    add(&directory, &catalogue.group("Finance").unwrap().id, &ada).await;
    let ada = directory.get_user(&ada.id).await.unwrap().unwrap();
    directory.clear_calls();
    let membership = groups.membership(&directory, &catalogue, &ada).await.unwrap();
    assert_eq!(membership, Membership::Known(["Finance".to_owned()].into()));
    assert_eq!(groups.strategy(), Some(MembershipStrategy::UserGroups));
    assert!(directory.calls().is_empty(), "no request: the user carried their groups");

    // A bridge that declines the member filter and shows members nowhere: unknown, after
    // one probe of the filter (with a user id nobody has, so an ignoring bridge shows too).
    let ignoring = InMemoryDirectory::with_behaviour(TwinBehaviour::no_memberships());
    let groups = ManagedGroups::new(managed(), Duration::from_secs(300));
    ignoring.before_next(DirectoryOp::GroupsWithMember, |_, call| assert_eq!(call.target, PROBE_USER));
    groups.catalogue(&ignoring).await.unwrap();
    assert_eq!(groups.strategy(), Some(MembershipStrategy::Unknown));
    assert_eq!(count(&ignoring, DirectoryOp::GroupsWithMember), 1);
}
