//! Search: prefix matching, ranking, who is left out, and keyset pages.

use echo_user::store::{SearchHit, SearchPosition, key, rank};

use crate::common::*;

async fn found(env: &Env, viewer: UserId, prefix: &str) -> Vec<UserId> {
    let hits = env.store.search(viewer, prefix, None, 50).await.unwrap();
    hits.iter().map(|hit| hit.profile.user_id).collect()
}

/// A query matches a prefix of any word of the display name, of the whole name, or of the
/// username; hits carry the stored profile.
pub async fn search_matches_words_names_and_usernames(env: &Env) {
    let viewer = env.register("Viewer").await;
    let ada = env.user("Ada Lovelace", "countess").await;
    let adam = env.user("Adam Smith", "adam_s").await;
    let grace = env.user("Grace Hopper", "amazing_grace").await;

    assert_eq!(found(env, viewer, "lov").await, [ada]);
    assert_eq!(found(env, viewer, "ada lov").await, [ada]);
    assert_eq!(found(env, viewer, "ada lovelace").await, [ada]);
    assert_eq!(found(env, viewer, "ada").await, [ada, adam]);
    assert_eq!(found(env, viewer, "adam_").await, [adam]);
    assert_eq!(found(env, viewer, "smi").await, [adam]);
    assert_eq!(found(env, viewer, "count").await, [ada]);
    assert_eq!(found(env, viewer, "amaz").await, [grace]);
    assert_eq!(found(env, viewer, "hopper").await, [grace]);
    assert!(found(env, viewer, "lovelace ada").await.is_empty());
    assert!(found(env, viewer, "zz").await.is_empty());

    let hits = env.store.search(viewer, "hop", None, 10).await.unwrap();
    let profile = env.store.profile(grace).await.unwrap().unwrap();
    assert_eq!(
        hits,
        [SearchHit {
            profile,
            rank: rank::OTHER
        }]
    );
}

/// The exact username first, then the viewer's contacts, then others, each by display name.
/// Left out: users neither having a username nor in the viewer's contacts, users who blocked
/// the viewer, deleted users, and the viewer.
pub async fn search_ranks_and_filters(env: &Env) {
    let viewer = env.user("Ada Viewer", "ada_viewer").await;
    let exact = env.user("Zed Ada", "ada").await;
    let contact = env.register("Ada Contact").await;
    let friend = env.user("Ada Friend", "friend").await;
    let other = env.user("Ada Other", "other").await;
    let blocked = env.user("Ada Blocked", "blocked").await;
    let hidden = env.register("Ada Hidden").await;
    let fan = env.register("Ada Fan").await;
    let blocker = env.user("Ada Blocker", "blocker").await;
    let gone = env.user("Ada Gone", "gone").await;
    for id in [contact, friend] {
        env.store
            .add_contact(viewer, id, "", now(), 100)
            .await
            .unwrap();
    }
    env.store
        .add_contact(fan, viewer, "", now(), 100)
        .await
        .unwrap();
    env.block(viewer, blocked).await;
    env.block(blocker, viewer).await;
    env.erase(gone, now()).await;

    let hits = env.store.search(viewer, "ada", None, 50).await.unwrap();
    let ranked: Vec<(UserId, i16)> = hits.iter().map(|h| (h.profile.user_id, h.rank)).collect();
    assert_eq!(
        ranked,
        [
            (exact, rank::EXACT_USERNAME),
            (contact, rank::CONTACT),
            (friend, rank::CONTACT),
            (blocked, rank::OTHER),
            (other, rank::OTHER),
        ]
    );
    // Others still find the ones the viewer could not.
    let outsider = env.register("Outsider").await;
    assert_eq!(found(env, outsider, "ada h").await, Vec::<UserId>::new());
    assert_eq!(found(env, outsider, "ada b").await, [blocked, blocker]);
    assert_eq!(found(env, outsider, "ada v").await, [viewer]);
    assert_eq!(found(env, hidden, "ada f").await, [friend]);
}

/// Pages after the last hit continue exactly where the previous one stopped, across ranks and
/// equal display names.
pub async fn search_pages_without_gaps_or_repeats(env: &Env) {
    let viewer = env.register("Viewer").await;
    let mut expected_count = 0;
    for n in 0..7 {
        let id = env
            .user(&format!("Page {}", 6 - n), &format!("page_{n}"))
            .await;
        if n % 3 == 0 {
            env.store
                .add_contact(viewer, id, "", now(), 100)
                .await
                .unwrap();
        }
        expected_count += 1;
    }
    for n in 0..3 {
        env.user("Page Twin", &format!("twin_{n}")).await;
        expected_count += 1;
    }
    env.user("Zz Exact", "page").await;
    expected_count += 1;

    let all = env.store.search(viewer, "page", None, 100).await.unwrap();
    assert_eq!(all.len(), expected_count);
    let order = |hit: &SearchHit| {
        (
            hit.rank,
            key(&hit.profile.display_name),
            hit.profile.user_id,
        )
    };
    assert!(all.windows(2).all(|w| order(&w[0]) < order(&w[1])));
    assert_eq!(all[0].rank, rank::EXACT_USERNAME);
    assert_eq!(all[1].rank, rank::CONTACT);

    for page_size in [1, 3, 4] {
        let mut paged = Vec::new();
        let mut after: Option<SearchPosition> = None;
        loop {
            let page = env
                .store
                .search(viewer, "page", after.as_ref(), page_size)
                .await
                .unwrap();
            assert!(page.len() <= page_size);
            let Some(last) = page.last() else { break };
            after = Some(SearchPosition {
                query: "page".to_owned(),
                rank: last.rank,
                display_name_key: key(&last.profile.display_name),
                user_id: last.profile.user_id,
            });
            paged.extend(page);
        }
        assert_eq!(paged, all, "page size {page_size}");
    }
}
