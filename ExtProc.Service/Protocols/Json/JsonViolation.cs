namespace ExtProc.Protocols.Json;

/// <summary>Why a body was refused by the strict JSON policy (faults.md §3.3, J1-J9). Codes are public.</summary>
internal enum JsonViolationKind
{
    None,
    InvalidJson,
    InvalidUtf8,
    InvalidUnicode,
    MaxDepthExceeded,
    DuplicateKey,
    AmbiguousField,
    InvalidNumber,
    InvalidField,
    MissingField,
    UnsupportedField,
}

internal readonly record struct JsonViolation(JsonViolationKind Kind, string Message)
{
    public static JsonViolation None => default;

    public bool IsNone => Kind == JsonViolationKind.None;

    public string Code => Kind switch
    {
        JsonViolationKind.InvalidJson => "invalid_json",
        JsonViolationKind.InvalidUtf8 => "invalid_utf8",
        JsonViolationKind.InvalidUnicode => "invalid_unicode",
        JsonViolationKind.MaxDepthExceeded => "max_depth_exceeded",
        JsonViolationKind.DuplicateKey => "duplicate_key",
        JsonViolationKind.AmbiguousField => "ambiguous_field",
        JsonViolationKind.InvalidNumber => "invalid_number",
        JsonViolationKind.InvalidField => "invalid_field",
        JsonViolationKind.MissingField => "missing_field",
        JsonViolationKind.UnsupportedField => "unsupported_field",
        _ => "none",
    };
}
