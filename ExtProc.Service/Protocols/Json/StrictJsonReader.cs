using System.Text.Json;
using System.Text.Unicode;
using ExtProc.Buffers;

namespace ExtProc.Protocols.Json;

/// <summary>
/// A <see cref="Utf8JsonReader"/> that enforces our JSON policy on every token while a caller reads fields
/// in the same pass (faults.md §3.3): no BOM, one root value and nothing after it, bounded depth, no duplicate
/// keys in any object (compared unescaped), every string well-formed UTF-8 without lone surrogates (also in
/// fields nobody reads, because they are forwarded). Any reader exception becomes a violation, never a throw.
/// </summary>
internal ref struct StrictJsonReader
{
    private Utf8JsonReader _reader;
    private readonly JsonNameTracker _names;
    private readonly int _maxDepth;
    private byte[]? _scratch;
    private int _scratchLength;
    private bool _unescaped;

    public StrictJsonReader(ReadOnlySpan<byte> json, int maxDepth, JsonNameTracker names)
    {
        // The reader's own limit sits one above ours so that we, not it, report the depth violation.
        _reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = maxDepth + 1 });
        _names = names;
        _maxDepth = maxDepth;
        Violation = json.StartsWith("\xEF\xBB\xBF"u8)
            ? new JsonViolation(JsonViolationKind.InvalidJson, "The body starts with a byte-order mark.")
            : JsonViolation.None;
    }

    public JsonViolation Violation { get; private set; }

    public readonly JsonTokenType TokenType => _reader.TokenType;

    /// <summary>Depth of the current token: 0 for the root value, 1 for the root object's properties.</summary>
    public readonly int CurrentDepth => _reader.CurrentDepth;

    /// <summary>The current property name or string value, unescaped; valid until the next Read.</summary>
    public readonly ReadOnlySpan<byte> Text => _unescaped ? _scratch.AsSpan(0, _scratchLength) : _reader.ValueSpan;

    /// <summary>Offset of the current token in the input.</summary>
    public readonly long TokenStartIndex => _reader.TokenStartIndex;

    /// <summary>Bytes consumed so far (just past the current token).</summary>
    public readonly long BytesConsumed => _reader.BytesConsumed;

    /// <summary>The raw bytes of the current number token.</summary>
    public readonly ReadOnlySpan<byte> RawValue => _reader.ValueSpan;

    /// <summary>Reads the next token; false at the end of the document or on a violation (see <see cref="Violation"/>).</summary>
    public bool Read()
    {
        if (!Violation.IsNone)
        {
            return false;
        }

        try
        {
            if (!_reader.Read())
            {
                return false;
            }

            _unescaped = false;
            switch (_reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    if (!CheckDepth())
                    {
                        return false;
                    }

                    _names.EnterObject(_reader.CurrentDepth);
                    break;
                case JsonTokenType.StartArray:
                    if (!CheckDepth())
                    {
                        return false;
                    }

                    break;
                case JsonTokenType.PropertyName:
                    if (!ValidateString())
                    {
                        return false;
                    }

                    // A property's depth is its object's depth + 1; the object was entered at that depth - 1.
                    if (!_names.Add(_reader.CurrentDepth - 1, Text))
                    {
                        return Fail(JsonViolationKind.DuplicateKey, "The body has a duplicate key in one object.");
                    }

                    break;
                case JsonTokenType.String:
                    if (!ValidateString())
                    {
                        return false;
                    }

                    break;
            }

            return true;
        }
        catch (JsonException)
        {
            return Fail(JsonViolationKind.InvalidJson, "The body is not valid JSON.");
        }
        catch (InvalidOperationException)
        {
            return Fail(JsonViolationKind.InvalidUnicode, "The body has an invalid Unicode escape.");
        }
        catch (ArgumentException)
        {
            return Fail(JsonViolationKind.InvalidJson, "The body is not valid JSON.");
        }
    }

    /// <summary>Skips the current value (validating everything inside it).</summary>
    public bool SkipValue()
    {
        if (_reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            return true;
        }

        var depth = _reader.CurrentDepth;
        while (Read())
        {
            if (_reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray && _reader.CurrentDepth == depth)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A whole number that fits an int, written without fraction or exponent.</summary>
    public readonly bool TryGetInteger(out int value)
    {
        value = 0;
        var raw = _reader.ValueSpan;
        return _reader.TokenType == JsonTokenType.Number
            && raw.IndexOfAny((byte)'.', (byte)'e', (byte)'E') < 0
            && !(raw.Length > 1 && raw[0] == (byte)'-' && raw[1] == (byte)'0')
            && _reader.TryGetInt32(out value);
    }

    /// <summary>A finite number (1e400 parses as infinity: refused).</summary>
    public readonly bool TryGetFiniteDouble(out double value)
    {
        value = 0;
        return _reader.TokenType == JsonTokenType.Number && _reader.TryGetDouble(out value) && double.IsFinite(value);
    }

    public bool Fail(JsonViolationKind kind, string message)
    {
        if (Violation.IsNone)
        {
            Violation = new JsonViolation(kind, message);
        }

        return false;
    }

    /// <summary>Checks the end of the document: nothing may follow the root value.</summary>
    public bool Finish()
    {
        if (!Violation.IsNone)
        {
            return false;
        }

        try
        {
            // With multiple values disallowed, trailing data makes this Read throw.
            if (_reader.Read())
            {
                return Fail(JsonViolationKind.InvalidJson, "The body has data after the JSON value.");
            }

            return true;
        }
        catch (JsonException)
        {
            return Fail(JsonViolationKind.InvalidJson, "The body has data after the JSON value.");
        }
    }

    public void Dispose()
    {
        if (_scratch is not null)
        {
            PooledBytes.Return(_scratch, _scratchLength);
            _scratch = null;
        }
    }

    private bool CheckDepth() =>
        _reader.CurrentDepth < _maxDepth || Fail(JsonViolationKind.MaxDepthExceeded, $"The body nests deeper than {_maxDepth} levels.");

    private bool ValidateString()
    {
        if (!Utf8.IsValid(_reader.ValueSpan))
        {
            return Fail(JsonViolationKind.InvalidUtf8, "The body has a string that is not valid UTF-8.");
        }

        if (!_reader.ValueIsEscaped)
        {
            return true;
        }

        // Growing clears (and carries over) the previous string before the old buffer goes back.
        PooledBytes.EnsureCapacity(ref _scratch, _scratchLength, _reader.ValueSpan.Length, minimum: 256);

        // Raw bytes were valid; unescaping refuses lone or reversed surrogate escapes
        // (InvalidOperationException, mapped to invalid_unicode by Read).
        _scratchLength = _reader.CopyString(_scratch);
        _unescaped = true;
        return true;
    }
}
