using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Peft.Core;
using Peft.Storage.Validation;
using Peft.Training.Serving;
using Peft.Web.Serving;

namespace Peft.Web.Infrastructure;

/// <summary>
/// The one place errors become HTTP: a <see cref="PeftUserException"/> maps by its kind (400/404/409/413/422) to
/// problem details whose detail is the one-line message (and <c>errors</c> lists every problem of a rejected upload);
/// Kestrel's own request errors (body too large) keep their status; the inference server's full queue is a 429 with
/// <c>Retry-After</c> and its generation timeout a 504; anything else is a 500 without internals. A streamed answer
/// that already started cannot change its status: those endpoints end the stream instead.
/// </summary>
internal sealed class PeftExceptionHandler(IProblemDetailsService problems, ILogger<PeftExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        ProblemDetails details;
        switch (exception)
        {
            case PeftUserException user:
                details = new ProblemDetails { Status = StatusOf(user.Kind), Title = TitleOf(user), Detail = user.Message };
                if (user is CatalogValidationException v) details.Extensions["errors"] = v.Problems;
                break;
            case ServerBusyException busy:
                context.Response.Headers.RetryAfter = ((int)Math.Ceiling(busy.RetryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
                details = new ProblemDetails { Status = StatusCodes.Status429TooManyRequests, Title = "Too many requests", Detail = busy.Message };
                break;
            case GenerationTimeoutException timeout:
                details = new ProblemDetails { Status = StatusCodes.Status504GatewayTimeout, Title = "Generation timed out", Detail = timeout.Message };
                break;
            case BadHttpRequestException bad:
                details = new ProblemDetails { Status = bad.StatusCode, Title = "Bad request", Detail = bad.Message };
                break;
            default:
                logger.LogError(exception, "Unhandled error on {Method} {Path}", context.Request.Method, context.Request.Path);
                details = new ProblemDetails { Status = StatusCodes.Status500InternalServerError, Title = "Internal server error" };
                break;
        }
        context.Response.StatusCode = details.Status!.Value;
        return await problems.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = details, Exception = exception });
    }

    /// <summary>The status an exception becomes (for metrics that count failed requests before this handler runs).</summary>
    public static int StatusOf(Exception e) => e switch
    {
        PeftUserException user => StatusOf(user.Kind),
        BadHttpRequestException bad => bad.StatusCode,
        _ => StatusCodes.Status500InternalServerError,
    };

    public static int StatusOf(UserErrorKind kind) => kind switch
    {
        UserErrorKind.BadRequest => StatusCodes.Status400BadRequest,
        UserErrorKind.NotFound => StatusCodes.Status404NotFound,
        UserErrorKind.Conflict => StatusCodes.Status409Conflict,
        UserErrorKind.TooLarge => StatusCodes.Status413PayloadTooLarge,
        _ => StatusCodes.Status422UnprocessableEntity,
    };

    private static string TitleOf(PeftUserException e) => e is CatalogValidationException v ? v.Title : e.Kind switch
    {
        UserErrorKind.BadRequest => "Bad request",
        UserErrorKind.NotFound => "Not found",
        UserErrorKind.Conflict => "Conflict",
        UserErrorKind.TooLarge => "Too large",
        _ => "Invalid input",
    };
}
