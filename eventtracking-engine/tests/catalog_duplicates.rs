//! Two event types with the same name and version but different schemas:
//! reading the catalog fails, naming both (its own test binary, so that the
//! other tests see a sound catalog).

use eventtracking::{catalog, TrackedEvent};

mod first {
    use super::TrackedEvent;

    /// A course was published.
    #[derive(TrackedEvent)]
    #[tracked_event(crate = "eventtracking", name = "course.publish", version = 2)]
    pub(crate) struct CoursePublished {
        /// The course.
        pub(crate) course_id: String,
    }
}

mod second {
    use super::TrackedEvent;

    /// A course was published (a different definition).
    #[derive(TrackedEvent)]
    #[tracked_event(crate = "eventtracking", name = "course.publish", version = 2)]
    pub(crate) struct CoursePublished {
        /// The course, as a number.
        pub(crate) course_id: u64,
    }
}

#[test]
fn duplicate_event_types_are_an_error_naming_both() {
    let error = catalog().unwrap_err();
    let message = error.to_string();
    assert_eq!(error.key, "course.publish@2");
    assert!(
        message.contains("catalog_duplicates::first::CoursePublished")
            && message.contains("catalog_duplicates::second::CoursePublished"),
        "{message}"
    );
    // Emitting still works: only the catalog is refused.
    let _ = (
        first::CoursePublished {
            course_id: "c".into(),
        }
        .course_id,
        second::CoursePublished { course_id: 1 }.course_id,
    );
}
