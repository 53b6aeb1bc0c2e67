//! The decider pattern: one trait every aggregate implements, and the
//! given/when/then helpers its tests are written with.
//!
//! A decider never reads the clock or a database; everything a decision needs
//! arrives in its state (folded from the aggregate's own stream), the command
//! and the [`Ctx`].

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a decision may know besides state and command: the time and who acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    /// The acting account, if any (`None` for anonymous callers and the system).
    pub actor: Option<Uuid>,
}

impl Ctx {
    pub fn at(now: DateTime<Utc>) -> Self {
        Ctx { now, actor: None }
    }

    pub fn with_actor(mut self, actor: Uuid) -> Self {
        self.actor = Some(actor);
        self
    }
}

/// An aggregate as a pair of pure functions.
pub trait Decider {
    type State: Default + Clone + std::fmt::Debug;
    type Command;
    type Event: Clone + std::fmt::Debug + PartialEq;
    type Error: std::fmt::Debug + PartialEq;

    /// Decide which events a command produces, given the current state.
    fn decide(state: &Self::State, command: Self::Command, ctx: &Ctx) -> Result<Vec<Self::Event>, Self::Error>;

    /// Fold one event into the state.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Fold a whole history.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), |s, e| Self::evolve(s, e))
    }
}

/// Given/when/then helpers for decider tests; no database, no async.
///
/// ```
/// # use medledger_domain::decider::{testing::given, Ctx};
/// # use medledger_domain::identity::session::{Session, SessionCommand, SessionError};
/// # let now = chrono::Utc::now();
/// given::<Session>(&[])
///     .when(SessionCommand::End { reason: "logout".into() }, &Ctx::at(now))
///     .then_error(SessionError::NotStarted);
/// ```
pub mod testing {
    use super::{Ctx, Decider};

    pub struct Given<D: Decider> {
        state: D::State,
    }

    pub struct Then<D: Decider> {
        result: Result<Vec<D::Event>, D::Error>,
    }

    pub fn given<D: Decider>(history: &[D::Event]) -> Given<D> {
        Given {
            state: D::fold(history),
        }
    }

    impl<D: Decider> Given<D> {
        pub fn when(self, command: D::Command, ctx: &Ctx) -> Then<D> {
            Then {
                result: D::decide(&self.state, command, ctx),
            }
        }

        pub fn state(&self) -> &D::State {
            &self.state
        }
    }

    impl<D: Decider> Then<D> {
        #[track_caller]
        pub fn then(self, expected: &[D::Event]) {
            match self.result {
                Ok(events) => assert_eq!(events, expected, "decided events differ"),
                Err(e) => panic!("expected events {expected:?}, got error {e:?}"),
            }
        }

        #[track_caller]
        pub fn then_error(self, expected: D::Error) {
            match self.result {
                Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
                Err(e) => assert_eq!(e, expected),
            }
        }

        /// The raw outcome, for assertions that need more than equality.
        pub fn outcome(self) -> Result<Vec<D::Event>, D::Error> {
            self.result
        }
    }
}
