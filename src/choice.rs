//! Named choices (placement, norm, activation, weight, ...) spelled as in the spec.
//!
//! [`crate::choice_enum!`] defines a `Copy` enum from one list of variants and spellings.
//! That one definition gives the enum its parser and printer (`FromStr`, `Display`), its
//! JSON form (`Serialize`, `Deserialize`), its command-line form (`clap::ValueEnum`, with
//! the `cli` feature), and errors that name the field and list the allowed values.

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
                value: crate::error::cut(s),
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

    /// The position of this variant in [`Choice::ALL`].
    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|v| v.name() == self.name())
            .unwrap_or(usize::MAX)
    }
}

/// Defines an enum of named choices: `choice_enum!(Name, "field", { Variant => "spelling", ... })`.
///
/// An optional `hidden { Variant => "spelling", ... }` after the list adds variants that
/// print but are not in [`Choice::ALL`], so they are never parsed or offered.
#[macro_export]
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $field:literal, {
            $( $(#[$vmeta:meta])* $variant:ident => $spelling:literal ),+ $(,)?
        }
        $( hidden {
            $( $(#[$hmeta:meta])* $hvariant:ident => $hspelling:literal ),+ $(,)?
        } )?
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            $( $( $(#[$hmeta])* $hvariant, )+ )?
        }

        impl $crate::choice::Choice for $name {
            const FIELD: &'static str = $field;
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $spelling,)+
                    $( $($name::$hvariant => $hspelling,)+ )?
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

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$name as $crate::choice::Choice>::parse(&s)
                    .map_err(|e| serde::de::Error::custom(e.reason()))
            }
        }

        #[cfg(feature = "cli")]
        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                <$name as $crate::choice::Choice>::ALL
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(
                    $crate::choice::Choice::name(*self),
                ))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::norm::Norm;

    #[test]
    fn spellings_round_trip_through_text_and_json() {
        for &n in Norm::ALL {
            assert_eq!(n.to_string().parse::<Norm>().unwrap(), n);
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(json, format!("\"{n}\""));
            assert_eq!(serde_json::from_str::<Norm>(&json).unwrap(), n);
            assert_eq!(Norm::ALL[n.index()], n);
        }
    }

    #[test]
    fn unknown_values_name_the_field_and_the_allowed_values() {
        let e = "batchnorm".parse::<Norm>().unwrap_err().to_string();
        assert_eq!(
            e,
            "norm: unknown value 'batchnorm' (allowed: layernorm, rmsnorm)"
        );
        let e = serde_json::from_str::<Norm>("\"x\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("unknown value 'x' (allowed: layernorm, rmsnorm)"),
            "{e}"
        );
        // A long value is cut in the message.
        let long = "n".repeat(10_000);
        let e = long.parse::<Norm>().unwrap_err().to_string();
        assert!(e.len() < 200, "{}", e.len());
    }
}
