//! Helpers shared by the integration tests: the server's URI, a fresh
//! database per test (dropped at the end), and a driver client to read back.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::future::IntoFuture;
use std::time::Duration;

use eventtracking::registry::{build_backend, ComponentConfig};
use eventtracking::Backend;
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};
use serde_json::json;

// Keep the crate (and so its `mongo` registration) linked.
use eventtracking_mongo as _;

/// The server (`EVENTTRACKING_TEST_MONGO_URI`), how long a test waits for
/// anything, and fast batching with a dead-letter file in a directory.
pub use eventtracking_testkit::{fast_delivery as delivery, servers::mongo_uri as uri, WAIT};

/// A database of its own for one test, dropped when this is dropped, and a
/// driver client (on a runtime of its own) to look at it.
pub struct TestDb {
    pub name: String,
    pub client: Client,
    runtime: tokio::runtime::Runtime,
}

impl TestDb {
    /// Fails at once, naming the address, when no server answers (the tests
    /// never skip: start one with `scripts/services start mongo`).
    pub fn new(prefix: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let uri = uri();
        let client = runtime.block_on(async {
            let mut options = ClientOptions::parse(&uri)
                .await
                .unwrap_or_else(|e| panic!("EVENTTRACKING_TEST_MONGO_URI={uri:?}: {e}"));
            options.server_selection_timeout = Some(Duration::from_secs(10));
            let client = Client::with_options(options).unwrap();
            if let Err(error) = client.database("admin").run_command(doc! {"ping": 1}).await {
                panic!(
                    "no MongoDB server answers at {uri} ({}): run `scripts/services start mongo` \
                     and `eval \"$(scripts/services env)\"`, or set EVENTTRACKING_TEST_MONGO_URI",
                    error.kind
                );
            }
            client
        });
        TestDb {
            name: eventtracking_testkit::unique_name(&format!("et_test_{prefix}")),
            client,
            runtime,
        }
    }

    /// Runs a future on this helper's runtime.
    pub fn block_on<F: IntoFuture>(&self, future: F) -> F::Output {
        self.runtime.block_on(future.into_future())
    }

    pub fn collection(&self, name: &str) -> Collection<Document> {
        self.client.database(&self.name).collection(name)
    }

    pub fn count(&self, collection: &str) -> u64 {
        self.block_on(self.collection(collection).count_documents(doc! {}))
            .unwrap()
    }

    /// Every document, sorted by `_id`.
    pub fn documents(&self, collection: &str) -> Vec<Document> {
        self.aggregate(collection, [doc! {"$sort": {"_id": 1}}])
    }

    /// The results of an aggregation pipeline.
    pub fn aggregate(
        &self,
        collection: &str,
        pipeline: impl IntoIterator<Item = Document>,
    ) -> Vec<Document> {
        self.block_on(async {
            let mut cursor = self
                .collection(collection)
                .aggregate(pipeline)
                .await
                .unwrap();
            let mut documents = Vec::new();
            while cursor.advance().await.unwrap() {
                documents.push(cursor.deserialize_current().unwrap());
            }
            documents
        })
    }

    pub fn index_names(&self, collection: &str) -> Vec<String> {
        self.block_on(self.collection(collection).list_index_names())
            .unwrap_or_default()
    }

    /// The backend built through the registry, as a config file would, for
    /// this database.
    pub fn backend(&self, options: serde_json::Value) -> Box<dyn Backend> {
        let mut options = options.as_object().unwrap().clone();
        options.entry("uri").or_insert(json!(uri()));
        options.entry("database").or_insert(json!(self.name));
        build_backend(&ComponentConfig::new(
            "backends.warehouse",
            "mongo",
            options,
        ))
        .unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = self
            .runtime
            .block_on(self.client.database(&self.name).drop().into_future());
    }
}

/// `uri` with `user:password@` put in (unless it has credentials already).
pub fn with_credentials(uri: &str, user: &str, password: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) if !rest.contains('@') => {
            format!("{scheme}://{user}:{password}@{rest}")
        }
        _ => uri.to_owned(),
    }
}
