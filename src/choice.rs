//! Named choices (placement, norm, activation, ...) spelled as in the spec.
//!
//! [`crate::choice_enum!`] defines a `Copy` enum whose CLI and JSON spelling is kebab-case, with
//! `FromStr` errors that list the allowed values.

use crate::error::ConfigError;

/// A closed set of named alternatives, spelled the same in code, CLI and JSON.
pub trait Choice: Sized + Copy + 'static {
    /// The config field this choice fills, used in error messages.
    const FIELD: &'static str;
    /// Every variant, in documentation order.
    const ALL: &'static [Self];
    /// The spec's spelling of this variant.
    fn name(self) -> &'static str;

    /// Parses the spec's spelling, with an error naming the field and the allowed values.
    fn parse(s: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name() == s)
            .ok_or_else(|| ConfigError::UnknownValue {
                field: Self::FIELD,
                value: s.to_string(),
                allowed: Self::allowed(),
            })
    }

    /// The allowed spellings, comma separated.
    fn allowed() -> String {
        Self::ALL
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Defines an enum of named choices: `choice_enum!(Name, "field", { Variant => "spelling", ... })`.
#[macro_export]
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal, {
            $( $(#[$vmeta:meta])* $variant:ident => $spelling:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $crate::choice::Choice for $name {
            const FIELD: &'static str = $field;
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $spelling),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::choice::Choice::name(*self))
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::ConfigError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$name as $crate::choice::Choice>::parse(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::choice::Choice::name(*self))
            }
        }
    };
}
